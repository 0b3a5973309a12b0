package interop

import (
	"github.com/tokend/tokend/internal/config"
)

type configT = config.Config
