"""What a run leaves: generated images, labelled grids, and PNGs that carry the record of how they were made."""
