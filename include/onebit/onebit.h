/* The whole public API of libonebit. */
#ifndef ONEBIT_H
#define ONEBIT_H

#include "onebit/args.h"
#include "onebit/backend.h"
#include "onebit/common.h"
#include "onebit/config.h"
#include "onebit/data.h"
#include "onebit/dist.h"
#include "onebit/format.h"
#include "onebit/infer.h"
#include "onebit/json.h"
#include "onebit/model.h"
#include "onebit/plot.h"
#include "onebit/quant.h"
#include "onebit/safetensors.h"
#include "onebit/sampler.h"
#include "onebit/schedule.h"
#include "onebit/tensor.h"
#include "onebit/tokenizer.h"
#include "onebit/train.h"

#endif
