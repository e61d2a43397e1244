from promptascent.cli.main import main

main()
