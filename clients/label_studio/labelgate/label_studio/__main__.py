from labelgate.label_studio.cli import main

main()
