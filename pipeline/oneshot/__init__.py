"""One-shot sky exploration (ULISSE, Doorenbos et al. 2022): galaxy sets, frozen ImageNet features,
faiss indexes, prototype and recursive search, label statistics, the feature atlas."""
