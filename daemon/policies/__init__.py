"""Decision policies: pure objects with no I/O, driven alike by the loop, finalize and simulations."""
