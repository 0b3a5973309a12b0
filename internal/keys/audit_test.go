package keys

import "github.com/tokend/tokend/internal/audit"

var audit0 = audit.Meta{Address: "test"}
