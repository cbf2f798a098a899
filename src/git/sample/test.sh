#!/bin/sh
# The sample's tests: run as `sh test.sh`; exit 0 means green.
failed=0
check() {
    expected=$1
    shift
    actual=$(sh app.sh "$@")
    if [ "$actual" = "$expected" ]; then
        echo "ok - app.sh $*"
    else
        echo "not ok - app.sh $*: expected '$expected', got '$actual'"
        failed=1
    fi
}
check 'Hello, world!'
check 'Hello, Ada!' Ada
if [ "$failed" -eq 0 ]; then echo 'all tests passed'; fi
exit "$failed"
