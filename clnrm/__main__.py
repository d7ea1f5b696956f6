from clnrm.cli import main

main()
