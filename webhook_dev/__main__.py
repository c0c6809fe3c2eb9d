from webhook_dev.cli import main

main()
