"""Trust: what makes a bundle believable (signatures) and what verification means (locks.py)."""
