// model_ranks.cpp: a Model across the ranks of a context-parallel run (model_ranks.h).
#include "model/model_ranks.h"

#include "io/config_json.h"
#include "io/json.h"
#include "parallel/model_parallel.h"
#include "runtime/nvtx.h"

namespace ittt::parallel {

void allreduce_gradients(Context& ctx, Model& model) {
    ITTT_NVTX_RANGE("cp_allreduce_gradients");
    std::vector<Tensor*> grads;
    for (Parameter& p : model.parameters())
        if (p.trainable) grads.push_back(&p.grad);
    ctx.allreduce_sum(grads, Traffic::Gradients);
}

void require_same_model(Context& ctx, const Model& model) {
    std::vector<std::pair<std::string, std::string>> fields;
    Json cfg = Json::parse(config_to_json(model.config()), "config");
    for (const Json::Member& m : cfg.as_object()) fields.push_back({m.first, m.second.dump()});
    fields.push_back({"dtype", dtype_name(model.dtype())});
    fields.push_back({"device", device_name(model.device())});
    uint64_t h = kFnv1aStart;
    for (const Parameter& p : model.parameters()) {
        Tensor host = p.value.to(Device::CPU);
        h = fnv1a_hash(p.name.data(), p.name.size(), h);
        h = fnv1a_hash(host.raw(), host.bytes(), h);
    }
    fields.push_back({"the hash of every weight", hash_hex(h)});
    ctx.require_same("the model", fields);
}

}  // namespace ittt::parallel
