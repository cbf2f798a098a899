#!/bin/sh
# Greets the name given as the first argument, or the world.
printf 'Hello, %s!\n' "${1:-world}"
