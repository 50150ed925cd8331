"""How a customer message is decided: the serving model, the correction memory and the atomic swap."""
