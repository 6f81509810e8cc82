from dbtgate.cli import main

raise SystemExit(main())
