"""Training the embedded model: Fashion-MNIST data, the architecture, the hybrid loss and the classifier."""
