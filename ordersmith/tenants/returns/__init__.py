"""Returns (RMA): approval, a disposition per unit on receipt, refund, store credit or exchange."""

# Registers the payments hook that lowers a return's refunded amount when its refund fails later.
from ordersmith.tenants.returns import refund_reversals as refund_reversals
