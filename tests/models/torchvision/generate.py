# Writes torchvision's state_dict entries (name and shape; num_batches_tracked left out) for a
# few models: the facts the builder tests compare convkit's parameter names and shapes with.
import sys, torchvision.models as tvm
models = {
    "alexnet": lambda: tvm.alexnet(),
    "vgg16": lambda: tvm.vgg16(),
    "vgg11_bn": lambda: tvm.vgg11_bn(),
    "googlenet_aux": lambda: tvm.googlenet(aux_logits=True, init_weights=True),
    "resnet18": lambda: tvm.resnet18(),
    "resnet50": lambda: tvm.resnet50(),
}
for name, make in models.items():
    m = make()
    with open(f"{name}.txt", "w") as f:
        for k, v in m.state_dict().items():
            if k.endswith("num_batches_tracked"): continue
            f.write(k + " " + " ".join(str(d) for d in v.shape) + "\n")
