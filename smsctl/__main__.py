from smsctl._entry import main

main()
