from clnrm._entry import main

main()
