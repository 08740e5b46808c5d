"""What is asked: the grammar of typed lists, a comparison's checked spec, the defaults of fields left out."""
