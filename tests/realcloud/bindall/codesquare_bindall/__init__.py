"""An ML2 mechanism driver for the real test cloud; installed into that cloud's venv only."""
