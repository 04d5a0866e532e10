"""Package data: the ImageNet-1k class names (index, WordNet synset, names) for predict."""
