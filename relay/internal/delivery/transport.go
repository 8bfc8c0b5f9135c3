package delivery

import (
	"fmt"

	"github.com/mllpd/mllpd/relay/internal/transport"
)

// TransportConfig is a destination's transport settings; see transport.Config.
type TransportConfig = transport.Config

// NewTransport returns the transport of d.Type: "mllp", "http" or "file".
func NewTransport(d TransportConfig) (Transport, error) {
	switch d.Type {
	case transport.TypeMLLP:
		return transport.NewMLLP(d)
	case transport.TypeHTTP:
		return transport.NewHTTP(d)
	case transport.TypeFile:
		return transport.NewFile(d)
	}
	return nil, fmt.Errorf("delivery: destination %q: unknown type %q (mllp, http or file)", d.Name, d.Type)
}
