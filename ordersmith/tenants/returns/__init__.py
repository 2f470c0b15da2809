"""Returns (RMA): approval, a disposition per unit on receipt, refund, store credit or exchange."""
