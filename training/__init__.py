"""The models: a shared frozen encoder trunk, LoRA adapters per task, training, evaluation and the gate."""
