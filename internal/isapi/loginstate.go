package isapi

import (
	"context"
	"net/http"
)

// LoginStatePath is asked without credentials by ReadLoginState.
const LoginStatePath = "/ISAPI/Security/userCheck"

// ReadLoginState asks the device for this client's login state with one
// request WITHOUT credentials, which never counts as a login: the device's
// 401 challenge carries the same userCheck body (lock status, seconds until
// unlock, tries left) as a refused login. The answer is an *AuthError with
// those fields (RetryLoginTime -1 when the device does not say); a device
// that does not ask for credentials answers an *AuthError with nothing known.
func (c *Client) ReadLoginState(ctx context.Context) (*AuthError, error) {
	r, err := c.send(ctx, http.MethodGet, LoginStatePath, nil, "")
	if err != nil {
		return nil, wrapOp(http.MethodGet, LoginStatePath, err)
	}
	if r.status != http.StatusUnauthorized {
		return &AuthError{Method: http.MethodGet, Path: LoginStatePath, RetryLoginTime: -1}, nil
	}
	return authErrorFromBody(http.MethodGet, LoginStatePath, r.body), nil
}
