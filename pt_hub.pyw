"""Double-click on Windows: the hub without a console window (``pythonw`` runs ``.pyw`` files).

Under ``pythonw`` there is no standard output or error (``sys.stdout`` is None): the hub's few
console lines are dropped, and everything else is in the data folder's ``logs/hub.jsonl``
(tests/test_packaging.py starts it with both streams closed).
"""

from pt_hub import main

raise SystemExit(main())
