"""How computation runs on this machine: precision and autocast (:mod:`.precision`), the CPU's
instruction set and a portable initialisation (:mod:`.cpu_isa`), and the CPU allocator's memory
(:mod:`.cpu_memory`)."""
