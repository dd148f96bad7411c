"""A Gaussian-mixture data distribution whose noised score and Hessian are known exactly.

If x_0 ~ Σ_k π_k N(μ_k, Σ_k) and x_t = α x_0 + σ ε with ε ~ N(0, I), then x_t is
again a Gaussian mixture, with means α μ_k and covariances A_k = α² Σ_k + σ² I.
With the responsibilities r_k(x) and the component scores g_k = -A_k⁻¹ (x - α μ_k):

    ∇ log p_t(x)  = Σ_k r_k g_k
    ∇² log p_t(x) = Σ_k r_k (g_k g_kᵀ - A_k⁻¹) - (Σ_k r_k g_k)(Σ_k r_k g_k)ᵀ

Tweedie's formula gives the denoiser x̂_0 = (x + σ² ∇ log p_t) / α, and a
noise-prediction network would return ε̂ = -σ ∇ log p_t. Everything is
computed in float64.

:func:`solve_probability_flow` integrates the probability-flow ODE with this
exact score, which gives the sample that a perfect deterministic sampler
reaches from the same initial noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hessframe.errors import InvalidArgumentError


@dataclass(frozen=True)
class GaussianMixture:
    """Mixture Σ_k π_k N(μ_k, Σ_k) of K Gaussians in d dimensions (float64).

    Attributes:
        weights: π, shape (K,), positive, summing to one.
        means: μ, shape (K, d).
        covariances: Σ, shape (K, d, d), symmetric positive definite.
    """

    weights: torch.Tensor
    means: torch.Tensor
    covariances: torch.Tensor

    def __post_init__(self) -> None:
        weights, means, covariances = self.weights, self.means, self.covariances
        if weights.ndim != 1 or means.ndim != 2 or covariances.ndim != 3:
            raise InvalidArgumentError(
                "weights, means and covariances must have shapes (K,), (K, d) and (K, d, d), got "
                f"{tuple(weights.shape)}, {tuple(means.shape)} and {tuple(covariances.shape)}"
            )
        k, d = means.shape
        if weights.shape[0] != k or covariances.shape != (k, d, d):
            raise InvalidArgumentError(
                f"weights must have shape ({k},) and covariances ({k}, {d}, {d}), got "
                f"{tuple(weights.shape)} and {tuple(covariances.shape)}"
            )
        if not (bool(torch.isfinite(means).all()) and bool(torch.isfinite(covariances).all())):
            raise InvalidArgumentError("means and covariances must be finite")
        if not bool((weights > 0).all()) or abs(float(weights.sum()) - 1) > 1e-9:
            raise InvalidArgumentError("weights must be positive and sum to one")
        if not bool(torch.allclose(covariances, covariances.mT)):
            raise InvalidArgumentError("covariances must be symmetric")
        if float(torch.linalg.eigvalsh(covariances).min()) <= 0:
            raise InvalidArgumentError("covariances must be positive definite")

    @property
    def dim(self) -> int:
        """d, the dimension of a sample."""
        return self.means.shape[1]

    def noised(self, alpha: float, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the means α μ_k and covariances α² Σ_k + σ² I of p_t."""
        eye = torch.eye(self.dim, dtype=torch.float64)
        return alpha * self.means, alpha**2 * self.covariances + sigma**2 * eye

    def log_density(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        """Return log p_t(x) for a batch x of shape (B, d)."""
        self._check_point(x, alpha, sigma)
        means, covariances = self.noised(alpha, sigma)
        return torch.logsumexp(self._component_log_densities(x, means, covariances), dim=1)

    def score(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        """Return ∇ log p_t(x), shape (B, d)."""
        responsibilities, component_scores, _ = self._parts(x, alpha, sigma)
        return torch.einsum("bk,bkd->bd", responsibilities, component_scores)

    def hessian(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        """Return ∇² log p_t(x), shape (B, d, d)."""
        responsibilities, component_scores, precisions = self._parts(x, alpha, sigma)
        mean_score = torch.einsum("bk,bkd->bd", responsibilities, component_scores)
        second_moment = torch.einsum(
            "bk,bki,bkj->bij", responsibilities, component_scores, component_scores
        )
        mean_precision = torch.einsum("bk,kij->bij", responsibilities, precisions)
        return second_moment - mean_precision - mean_score[:, :, None] * mean_score[:, None, :]

    def denoised(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        """Return the posterior mean E[x_0 | x_t = x] = (x + σ² ∇ log p_t(x)) / α."""
        return (x + sigma**2 * self.score(x, alpha, sigma)) / alpha

    def noise_prediction(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        """Return the optimal noise prediction ε̂ = -σ ∇ log p_t(x)."""
        return -sigma * self.score(x, alpha, sigma)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw n exact samples of x_0, shape (n, d)."""
        components = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        cholesky = torch.linalg.cholesky(self.covariances)
        noise = torch.randn(n, self.dim, dtype=torch.float64, generator=generator)
        return self.means[components] + torch.einsum("nij,nj->ni", cholesky[components], noise)

    def mahalanobis_distances(self, x: torch.Tensor) -> torch.Tensor:
        """Return the squared Mahalanobis distance of each x_0 to each component, (B, K)."""
        difference = x[:, None, :] - self.means[None]
        solved = torch.linalg.solve(self.covariances[None], difference[..., None])[..., 0]
        return (difference * solved).sum(-1)

    def _check_point(self, x: torch.Tensor, alpha: float, sigma: float) -> None:
        """Raise InvalidArgumentError unless x is (B, d) and the noise level is valid."""
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != self.dim:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InvalidArgumentError(f"x must be a tensor of shape (B, {self.dim}), got {shape}")
        if not (math.isfinite(alpha) and alpha > 0 and math.isfinite(sigma) and sigma >= 0):
            raise InvalidArgumentError(
                f"alpha must be finite and > 0 and sigma finite and >= 0, got alpha={alpha}, "
                f"sigma={sigma}"
            )

    def _component_log_densities(
        self, x: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor
    ) -> torch.Tensor:
        cholesky = torch.linalg.cholesky(covariances)
        difference = x[:, None, :] - means[None]
        whitened = torch.linalg.solve_triangular(
            cholesky[None], difference[..., None], upper=False
        )[..., 0]
        log_determinant = 2 * torch.log(torch.diagonal(cholesky, dim1=-2, dim2=-1)).sum(-1)
        quadratic = (whitened**2).sum(-1)
        return torch.log(self.weights)[None] - 0.5 * (
            quadratic + log_determinant[None] + self.dim * math.log(2 * math.pi)
        )

    def _parts(
        self, x: torch.Tensor, alpha: float, sigma: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return responsibilities (B, K), component scores (B, K, d), precisions (K, d, d)."""
        self._check_point(x, alpha, sigma)
        x = x.to(torch.float64)
        means, covariances = self.noised(alpha, sigma)
        precisions = torch.linalg.inv(covariances)
        precisions = (precisions + precisions.mT) / 2
        responsibilities = torch.softmax(
            self._component_log_densities(x, means, covariances), dim=1
        )
        component_scores = -torch.einsum("kij,bkj->bki", precisions, x[:, None, :] - means[None])
        return responsibilities, component_scores, precisions


def default_mixture(dim: int = 16, seed: int = 0) -> GaussianMixture:
    """Return the benchmark's mixture: four anisotropic Gaussians in ``dim`` dimensions.

    Each component has a random orthonormal frame and variances spread
    log-uniformly from 0.3 down to 0.003, so its posterior covariance has a
    few large directions and many small ones, the structure a low-rank
    approximation is meant to catch. The means lie on a sphere of radius 1.5.
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
        raise InvalidArgumentError(f"dim must be an integer >= 2, got {dim!r}")
    generator = torch.Generator().manual_seed(seed)
    components = 4
    means = torch.randn(components, dim, dtype=torch.float64, generator=generator)
    means = 1.5 * means / torch.linalg.vector_norm(means, dim=1, keepdim=True)
    variances = torch.logspace(math.log10(0.3), math.log10(0.003), dim, dtype=torch.float64)
    covariances = []
    for _ in range(components):
        frame, _ = torch.linalg.qr(torch.randn(dim, dim, dtype=torch.float64, generator=generator))
        covariances.append(frame @ torch.diag(variances) @ frame.T)
    covariances = torch.stack(covariances)
    weights = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    return GaussianMixture(weights, means, (covariances + covariances.mT) / 2)


class MixtureNoisePredictor:
    """The exact noise prediction of a mixture, called like a diffusers model on discrete steps.

    ``predictor(x, t)`` returns ε̂ at the training step t of a scheduler with
    cumulative products ``alphas_cumprod`` (α_t = √ᾱ_t, σ_t = √(1 - ᾱ_t)),
    in the dtype of x. It counts its calls in ``evaluations``.
    """

    def __init__(self, mixture: GaussianMixture, alphas_cumprod: torch.Tensor) -> None:
        self.mixture = mixture
        self.alphas_cumprod = alphas_cumprod.to(torch.float64)
        self.evaluations = 0

    def __call__(self, x: torch.Tensor, timestep: int | torch.Tensor) -> torch.Tensor:
        self.evaluations += 1
        alpha_bar = float(self.alphas_cumprod[int(timestep)])
        prediction = self.mixture.noise_prediction(
            x.reshape(x.shape[0], -1).to(torch.float64),
            math.sqrt(alpha_bar),
            math.sqrt(1 - alpha_bar),
        )
        return prediction.reshape(x.shape).to(x.dtype)


def solve_probability_flow(
    mixture: GaussianMixture,
    x_start: torch.Tensor,
    alpha_bar_start: float,
    *,
    steps: int = 400,
) -> torch.Tensor:
    """Integrate the probability-flow ODE from x_start at ᾱ = alpha_bar_start down to noise zero.

    In y = x / α and s = σ / α the ODE reads dy/ds = ε̂(α y) with the exact
    noise prediction. It is integrated by the classical Runge-Kutta method on a
    grid uniform in log(s + s_min) with s_min = 1e-3, which puts most steps
    where the score changes fastest, near s = 0.

    Returns:
        The exact ODE solution x_0 from each row of x_start, float64 (B, d).
    """
    y = x_start.to(torch.float64) / math.sqrt(alpha_bar_start)
    s_start = math.sqrt((1 - alpha_bar_start) / alpha_bar_start)
    s_min = 1e-3
    grid = (
        torch.exp(
            torch.linspace(
                math.log(s_start + s_min), math.log(s_min), steps + 1, dtype=torch.float64
            )
        )
        - s_min
    )
    grid[-1] = 0.0

    def velocity(y_now: torch.Tensor, s: float) -> torch.Tensor:
        alpha = 1 / math.sqrt(1 + s**2)
        return mixture.noise_prediction(alpha * y_now, alpha, s * alpha)

    for s_now, s_next in zip(grid[:-1].tolist(), grid[1:].tolist(), strict=True):
        h = s_next - s_now
        k1 = velocity(y, s_now)
        k2 = velocity(y + h / 2 * k1, s_now + h / 2)
        k3 = velocity(y + h / 2 * k2, s_now + h / 2)
        k4 = velocity(y + h * k3, s_next)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return y
