"""Scaling ladders: every family trained at several sizes, each at its best learning rate, with fresh seeds on the
test split; power laws fitted along each family (docs/ladder.md)."""
