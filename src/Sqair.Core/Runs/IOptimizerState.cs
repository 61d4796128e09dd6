using static TorchSharp.torch;

namespace Sqair.Runs;

/// <summary>
/// What a checkpoint keeps of an optimiser: its steps and its state as named tensors. Declared here, beside the
/// checkpoint, so that storing a run needs no part of the training code.
/// </summary>
internal interface IOptimizerState
{
    /// <summary>Optimiser steps taken (skipped steps not counted).</summary>
    long Steps { get; }

    /// <summary>Every state tensor under "optimizer/&lt;slot&gt;/&lt;parameter&gt;".</summary>
    IEnumerable<(string Key, Tensor Value)> State();

    /// <summary>Restores the state written by <see cref="State"/>; throws on a missing or misshapen tensor.</summary>
    void Load(IReadOnlyDictionary<string, Tensor> tensors, long steps);
}
