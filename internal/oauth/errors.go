package oauth

// Error codes of RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1 and OIDC Core
// §3.1.2.6.
const (
	CodeInvalidRequest          = "invalid_request"
	CodeInvalidClient           = "invalid_client"
	CodeInvalidGrant            = "invalid_grant"
	CodeUnauthorizedClient      = "unauthorized_client"
	CodeUnsupportedGrantType    = "unsupported_grant_type"
	CodeUnsupportedResponseType = "unsupported_response_type"
	CodeInvalidScope            = "invalid_scope"
	CodeAccessDenied            = "access_denied"
	CodeLoginRequired           = "login_required"
	CodeInteractionRequired     = "interaction_required"
	CodeServerError             = "server_error"
	CodeTemporarilyUnavailable  = "temporarily_unavailable"
)

// Error is an OAuth error: a code from the RFCs and a description a person
// can read. Reason, when set, goes to the logs only (the client always sees
// Description). Domain packages return it; the HTTP layer chooses the status
// from the code.
type Error struct {
	Code        string
	Description string
	Reason      string
}

func (e *Error) Error() string {
	if e.Reason != "" {
		return e.Code + ": " + e.Description + " (" + e.Reason + ")"
	}
	return e.Code + ": " + e.Description
}

// Is makes errors.Is match any *Error of the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Description == "" && t.Reason == ""
}

// Sentinels to compare against with errors.Is (any description matches).
var (
	ErrInvalidRequest     = &Error{Code: CodeInvalidRequest}
	ErrInvalidClient      = &Error{Code: CodeInvalidClient}
	ErrInvalidGrant       = &Error{Code: CodeInvalidGrant}
	ErrUnauthorizedClient = &Error{Code: CodeUnauthorizedClient}
	ErrInvalidScope       = &Error{Code: CodeInvalidScope}
)

// InvalidRequest is a malformed request.
func InvalidRequest(desc string) *Error { return &Error{Code: CodeInvalidRequest, Description: desc} }

// InvalidGrant is a grant (code, refresh token, password) that does not
// work; reason is for the logs.
func InvalidGrant(desc, reason string) *Error {
	return &Error{Code: CodeInvalidGrant, Description: desc, Reason: reason}
}

// InvalidScope is a scope that is unknown or not allowed.
func InvalidScope(desc string) *Error { return &Error{Code: CodeInvalidScope, Description: desc} }

// UnauthorizedClient is a client using a grant it was not registered for.
func UnauthorizedClient(desc string) *Error {
	return &Error{Code: CodeUnauthorizedClient, Description: desc}
}

// InvalidClient is an unknown client, a failed client authentication, or a
// client of a kind the flow does not take.
func InvalidClient(desc string) *Error { return &Error{Code: CodeInvalidClient, Description: desc} }
