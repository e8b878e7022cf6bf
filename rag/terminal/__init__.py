"""The terminal interface: the click commands (cli), the chat loop (chat), and how answers, sources
and reports are printed (render), never letting a document drive the terminal (safety)."""
