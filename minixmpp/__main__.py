from minixmpp.cli import main

raise SystemExit(main())
