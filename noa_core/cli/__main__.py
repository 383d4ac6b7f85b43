from noa_core.cli.main import main

main()
