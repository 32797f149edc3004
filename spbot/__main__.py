from .statedir import use_private_umask

use_private_umask()              # whatever `python -m spbot` writes (state, keys, dev stack) is private

from .launch import main  # noqa: E402

raise SystemExit(main())
