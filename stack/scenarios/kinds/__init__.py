"""One module per kind of scenario; `index.KINDS` lists them (this package file imports nothing, so a kind may
import another kind without an import circle). Each provides:

    validate(params)   raise ValueError naming the problem (called when the registry loads)
    start(ctx)         break things and start the scenario's own traffic (idempotent: safe to apply twice)
    tick(ctx)          called about once a second while the scenario runs (may do nothing)
    heal(ctx)          undo what start did (idempotent)
    reset(run)         the safety net of `make heal`: undo this kind's breakage without a context (idempotent)
"""
