import torch
from vqalib.method.aso import aso_loss, optimal_policy, reward_abs
from vqalib.schema.levels import LEVELS  # the 9 score levels 1.0, 1.5, ..., 5.0

pi_ref = torch.tensor([.01, .02, .05, .12, .30, .25, .15, .07, .03], dtype=torch.float64)  # SFT model, one clip
pi_star = optimal_policy(pi_ref, reward_abs(2.5, beta=1.0), lam=1.0, probs=True)  # the human score s* is 2.5
logits = torch.zeros(9, dtype=torch.float64, requires_grad=True)  # a stand-in model: pi_theta = softmax(logits)
opt = torch.optim.SGD([logits], lr=1.0)
for step in range(500):  # ASO: cross-entropy to pi* on the score tokens
    opt.zero_grad()
    aso_loss(logits.log_softmax(-1), pi_star).backward()
    opt.step()
for name, pi in (("pi_ref", pi_ref), ("pi*", pi_star), ("pi_theta", logits.softmax(-1).detach())):
    print(f"{name:8} E[score] {float(pi @ torch.tensor(LEVELS)):.2f} |", " ".join(f"{float(p):.2f}" for p in pi))
