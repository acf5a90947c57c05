"""The two objectives that are not fits: the grid world's value function (value iteration, policy
iteration, Q-learning, a solver on the Bellman error; checked by LP and by exhaustive policy
evaluation) and a GAN of layerwise layers on a 2-D mixture (mode coverage on a small run)."""
import numpy as np
import pytest

from layerwise import objectives as ob
from layerwise.estimators import gan as G
from layerwise.estimators import rl


@pytest.fixture(scope="module")
def world():
    return rl.GridWorld.classic()


@pytest.fixture(scope="module")
def optimum(world):
    return rl.value_iteration(world.P, world.R, world.gamma)


def test_gridworld_is_a_valid_mdp(world):
    assert world.P.shape == (11, 4, 11) and world.R.shape == (11, 4)
    np.testing.assert_allclose(world.P.sum(axis=2), 1.0)
    s = world.index[(2, 0)]                          # bottom-left: "up" goes up w.p. 0.8, slips right 0.1, wall 0.1
    assert world.P[s, 0, world.index[(1, 0)]] == pytest.approx(0.8)
    assert world.P[s, 0, world.index[(2, 1)]] == pytest.approx(0.1)
    assert world.P[s, 0, s] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="terminal cells"):
        rl.GridWorld(terminals={(1, 1): 1.0})


def test_value_and_policy_iteration_match_the_linear_program(world, optimum):
    V_vi, pi_vi, n_vi, _ = optimum
    V_pi, pi_pi, n_pi, _ = rl.policy_iteration(world.P, world.R, world.gamma)
    V_lp = rl.solve_lp(world.P, world.R, world.gamma)
    np.testing.assert_allclose(V_vi, V_lp, atol=1e-9)
    np.testing.assert_allclose(V_pi, V_lp, atol=1e-9)
    free = ~world.terminal
    np.testing.assert_array_equal(pi_vi.argmax(1)[free], pi_pi.argmax(1)[free])
    assert n_pi < n_vi                                # a handful of exact improvements vs many sweeps
    # the textbook policy: from the start (bottom-left) go up, and avoid the pit next to (1, 2)
    assert pi_vi[world.index[(2, 0)]].argmax() == 0 and pi_vi[world.index[(1, 2)]].argmax() == 0
    # V* is the value of its greedy policy, and the Bellman error is zero there
    np.testing.assert_allclose(ob.policy_evaluation(world.P, world.R, pi_vi, world.gamma), V_vi, atol=1e-9)
    assert ob.bellman_error(V_vi, world.P, world.R, pi_vi, world.gamma)[0] < 1e-18


def test_optimum_beats_every_deterministic_policy_on_a_small_grid():
    w = rl.GridWorld(shape=(3, 3), walls=((1, 1),), terminals={(0, 2): 1.0, (2, 2): -1.0})
    V_best, pi_best, count = rl.best_policy_exhaustive(w.P, w.R, w.gamma, w.terminal)
    assert count == 4 ** 6
    V, pi, _, _ = rl.value_iteration(w.P, w.R, w.gamma)
    np.testing.assert_allclose(V, V_best, atol=1e-9)
    np.testing.assert_allclose(ob.policy_evaluation(w.P, w.R, pi_best, w.gamma), V, atol=1e-9)


def test_q_learning_finds_the_optimal_policy(world, optimum):
    V, pi, _, _ = optimum
    Q, visits = rl.q_learning(world.P, world.R, world.gamma, episodes=1500, terminal=world.terminal, seed=0)
    free = ~world.terminal
    np.testing.assert_array_equal(Q.argmax(1)[free], pi.argmax(1)[free])
    assert np.abs(Q.max(1) - V)[free].max() < 0.1
    assert visits[free].min() > 100                   # every (s, a) explored


def test_policy_evaluation_by_a_solver_on_the_bellman_error(world):
    pi = np.random.default_rng(0).dirichlet(np.ones(4), size=world.n_states)   # a stochastic policy
    V, n_iter = rl.evaluate_policy_by_solver(world.P, world.R, pi, world.gamma)
    np.testing.assert_allclose(V, ob.policy_evaluation(world.P, world.R, pi, world.gamma), atol=1e-6)
    assert n_iter < 5000


def test_generator_gradient_through_the_discriminator_matches_finite_differences():
    gan = G.GAN(hidden=(6,), batch_size=8, seed=0)
    z = np.random.default_rng(1).standard_normal((8, 2))

    def loss():
        return ob.generator_loss(gan.discriminator.forward(gan.generator.forward(z))[:, 0])[0]

    gan.generator.zero_grad()
    _, db = ob.generator_loss(gan.discriminator.forward(gan.generator.forward(z))[:, 0])
    gan.generator.backward(gan.discriminator.backward(db[:, None]))
    for name, p in gan.generator.named_params().items():
        for idx in [(0,) * p.data.ndim, tuple(s - 1 for s in p.data.shape)]:
            old = p.data[idx]
            p.data[idx] = old + 1e-6
            up = loss()
            p.data[idx] = old - 1e-6
            down = loss()
            p.data[idx] = old
            assert p.grad[idx] == pytest.approx((up - down) / 2e-6, rel=1e-5, abs=1e-9), name


def test_gan_covers_every_mode_of_a_small_mixture():
    X, _ = G.ring_of_gaussians(2000, modes=4, std=0.1, rng=np.random.default_rng(0))
    centres = G.ring_centres(4)
    gan = G.GAN(lr=2e-3, seed=0)
    _, before = G.mode_coverage(gan.sample(2000), centres, std=0.1)
    gan.fit(X, n_iter=500)
    counts, good = G.mode_coverage(gan.sample(2000), centres, std=0.1)
    assert before < 0.1                               # the untrained generator is nowhere near the modes
    assert good > 0.5
    assert counts.min() >= counts.sum() / 4 / 4, counts   # each mode at least a quarter of a fair share
    V = np.array(gan.history)[-100:, 1]
    assert abs(V.mean() + np.log(4)) < 0.5            # the value hovers near the equilibrium's -log 4


def test_plot_commands_write_pngs(tmp_path, capsys):
    from layerwise.cli import main
    out = tmp_path / "gw.png"
    assert main(["plot", "gridworld", "--out", str(out), "--episodes", "200"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out2 = tmp_path / "gan.png"
    assert main(["plot", "gan", "--out", str(out2), "--iters", "30", "--modes", "4"]) == 0
    assert out2.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "max |V_vi - V_LP|" in printed and "modes covered" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gan.png", "gw.png"]   # no temp files left
