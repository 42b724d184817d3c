package isapi

import (
	"bytes"
	"context"
	"net/http"
	"strings"
)

// Snapshot GETs a picture path (e.g. /ISAPI/Streaming/channels/101/picture,
// or .../ContentMgmt/StreamingProxy/channels/101/picture on NVRs) and returns
// the raw JPEG, checked for SOI (FF D8 FF) and EOI (FF D9). An XML answer
// becomes a *StatusError even with HTTP 200; other content is ErrProtocol.
func (c *Client) Snapshot(ctx context.Context, path string) ([]byte, error) {
	status, b, err := c.Do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	if looksXML(b) {
		se := &StatusError{Method: http.MethodGet, Path: path, HTTPStatus: status,
			ErrorMsg: "XML answer instead of a JPEG"}
		if rs, ok := parseResponseStatus(b); ok {
			se.StatusCode = atoiOr(rs.StatusCode, 0)
			se.StatusString = strings.TrimSpace(rs.StatusString)
			se.SubStatusCode = strings.TrimSpace(rs.SubStatusCode)
		}
		return nil, se
	}
	if !bytes.HasPrefix(b, []byte{0xFF, 0xD8, 0xFF}) {
		return nil, protocolError(http.MethodGet, path, "snapshot is not a JPEG (%d bytes)", len(b))
	}
	// some firmware pads the picture; tolerate trailing zero/CR/LF bytes
	end := bytes.TrimRight(b, "\x00\r\n")
	if !bytes.HasSuffix(end, []byte{0xFF, 0xD9}) {
		return nil, protocolError(http.MethodGet, path, "snapshot JPEG is truncated (no EOI, %d bytes)", len(b))
	}
	return end, nil
}
