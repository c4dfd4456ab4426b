"""Package resources: the ImageNet class list and the release manifest."""
