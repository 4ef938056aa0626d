module github.com/muxkit/reactor/bench

go 1.26.8

require github.com/muxkit/reactor v0.0.0-00010101000000-000000000000

require golang.org/x/sys v0.50.0 // indirect

replace github.com/muxkit/reactor => ../
