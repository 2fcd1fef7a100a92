module meshd.dev/meshd

go 1.26

require (
	github.com/cloudflare/circl v1.6.5
	golang.org/x/crypto v0.54.0
	pgregory.net/rapid v1.3.0
)

require (
	github.com/pelletier/go-toml/v2 v2.4.3 // indirect
	golang.org/x/sys v0.47.0 // indirect
)
