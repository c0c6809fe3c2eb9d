from webhook_dev.commands.main import main

main()
