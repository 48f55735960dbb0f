"""The application around the core: the command line and its terminal output (`cli`, `console`), the composition
root (`core`), the settings (`settings`), logging (`logs`) and the HTTP app (`web`). The Discord entry point stays
`bot.py` at the top level, and the core's own packages (`jobs`, `storage`, `runpod_client`) sit beside this one."""
