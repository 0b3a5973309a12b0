package interop

import (
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/secret"
	"github.com/tokend/tokend/internal/sessions"
	"github.com/tokend/tokend/internal/store"
)

func loginReq(email, password string) sessions.LoginRequest {
	return sessions.LoginRequest{Email: email, Password: secret.String(password), ClientID: "web", Kind: store.ClientWeb}
}

type configT = config.Config
