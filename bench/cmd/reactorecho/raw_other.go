//go:build !linux

package main

import (
	"errors"
	"os"
)

func serveRaw(string, bool, <-chan os.Signal) error {
	return errors.New("-model raw and rawpark need linux (epoll)")
}

func serveUring(string, <-chan os.Signal) error {
	return errors.New("-model uring needs linux (io_uring)")
}
