"""Speed: the engine against DiTPipeline, the speed suite and the README blocks made from its JSON."""
