"""The models: a shared frozen encoder trunk, LoRA adapters per task, training, the gate and serving."""
