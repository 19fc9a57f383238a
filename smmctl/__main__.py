from smmctl.main import main

main()
