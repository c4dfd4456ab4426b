"""Package data: the ImageNet class list."""
