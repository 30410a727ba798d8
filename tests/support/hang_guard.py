"""How long a test waits for a subprocess before calling it hung.

A guard against hangs only, never a speed check: a subprocess of the suite (a 2-step training run, a pip install)
may take many times its idle time on a machine shared with other jobs, and must still pass there.
"""

#: seconds; far above any subprocess of the suite on a loaded 2-core machine
SUBPROCESS_HANG_S = 3600
