"""The TwinDNN system, shared by both halves: closed-form schedulers (:mod:`.model`), the event
replay that checks them (:mod:`.simulate`), and the host loop that runs them on a board
(:mod:`.host_loop`, standalone: copied beside the board script)."""
