from smsctl.cli import main

main()
