from rag.terminal.cli import main

main()
