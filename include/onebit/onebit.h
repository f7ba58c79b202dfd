/* The whole public API of libonebit. */
#ifndef ONEBIT_H
#define ONEBIT_H

#include "onebit/args.h"
#include "onebit/backend.h"
#include "onebit/common.h"
#include "onebit/config.h"
#include "onebit/data.h"
#include "onebit/json.h"
#include "onebit/tokenizer.h"

#endif
